"""Image references, registry client, content store, unpacking, image records."""
