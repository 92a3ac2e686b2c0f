"""What the tests and the benchmarks share: real server processes on free ports
(processes), and generated media whose truth is known (images, videos, faces,
shapes), and a webhook receiver. It lives outside tests/ so that benches and
scripts never import a test package (an import-linter contract in `make lint`);
no runtime package imports it either."""
