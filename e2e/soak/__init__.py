"""The soak: pod churn for a set time, with the daemon and the node sampled."""
