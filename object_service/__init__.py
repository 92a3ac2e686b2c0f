"""Percept's object service: ultralytics YOLO over gRPC."""
