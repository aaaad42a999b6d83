"""ingress: receives Omnidesk webhooks and publishes them durably to RabbitMQ."""
