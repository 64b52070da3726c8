"""Where the plugin meets NeMo and Lightning: registration, data loaders, the training loop, fine-tuning, catalog, hub.

Nothing here imports ``nemo_aligner_plugin.model``: the model sits above these parts and passes itself in.
"""
