"""Namespace pinning, CNI invocation, DNS/hosts files, dialing into a pod netns."""
