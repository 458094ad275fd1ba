"""Object detection shared by the people and vehicle analytics: the detector
slot (`detector.py`), the bundled YOLOv3-tiny converted from Darknet
(`darknet.py`) and the per-process batching runtime (`batching.py`)."""
