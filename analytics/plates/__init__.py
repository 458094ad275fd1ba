"""Licence plate recognition: the NFV4-LPR3 analytic and what it is made of.

- `plugin`: the analytic (config, presets, processor: vehicles tracked, best frames
  read, readings voted, one event per pass).
- `capabilities`: the plate reader as a shared model.
- `watchlist`: the interface of registered-vehicle lists, which another app implements.
- `reader`: finds and reads text on a vehicle crop with the PP-OCRv6 models bundled
  in the `rapidocr` wheel (ONNX Runtime, the project's providers).
- `formats`: region plate formats (Indonesia, UK, generic, any regular expression),
  normalisation, correction of OCR confusions by slot, display.
- `voting`: one plate per vehicle pass from many readings.
- `matching`: registered plates matched with OCR tolerance; search keys.
- `registered`: the directory of registered vehicles a plate pipeline matches
  against (kept by the vehicles app, which registers it when it starts).

Nothing here imports other apps of the project; only analytics (its runtime,
registry and objects/), live and core.
"""
