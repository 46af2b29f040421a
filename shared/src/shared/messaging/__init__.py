"""RabbitMQ wiring: topology, the store-to-broker relay, and delivery handling."""
