"""Chart sources as files: values documentation (docs.py) and values.schema.json (schema.py). Pure: they
read and write files, never run helm."""
