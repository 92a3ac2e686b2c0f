"""Percept's face service: face_recognition (dlib) over gRPC."""
