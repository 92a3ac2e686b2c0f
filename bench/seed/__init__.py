"""The seed's architecture, rebuilt as a measuring stick for `make bench-vs-seed`.

Percept replaced a Flask + Celery + Redis design. This package rebuilds it
faithfully, for benchmarks only (installed by the `bench` extra, never by
`make setup`):

- `app.py`: a Flask app with Percept's REST paths, served by gunicorn
  (`gunicorn_conf.py`): the upload is base64-encoded into a Celery task;
  `?wait=true` blocks on the result (simple mode), otherwise 202 + task id;
- `tasks.py`: the Celery 5 app, Redis as broker AND result backend, a prefork
  worker with one process per core, each loading the models once;
- `calls.py`: the model calls themselves (decode as Percept does, then
  `face_recognition.face_locations` or ultralytics `YOLO.predict`), shared with
  the benchmark's in-process ceilings so both run the very same code.
"""
