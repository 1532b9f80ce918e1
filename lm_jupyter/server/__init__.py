"""The Jupyter server extension: ExtensionApp, thin handlers, auth."""
