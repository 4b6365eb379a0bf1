"""One module per crid-runtime verb, each with ``main(ctx, argv) -> int``."""
