"""IRMoGen backend: motion core, models, training and the local server. Never imports bpy."""
__version__ = "0.1.0"
