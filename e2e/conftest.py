pytest_plugins = ["e2e.fixtures.daemon", "e2e.fixtures.registry", "e2e.fixtures.bundle"]
