"""A CNI invoker: network configs, plugin execution, results and their cache."""
