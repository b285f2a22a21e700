"""Lightning callbacks of this project. Import each from its own submodule, for example
``spinal_lightning.callbacks.<module>.<Callback>``, which is also its ``class_path`` in YAML."""
