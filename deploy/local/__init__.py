"""The local stack: PostgreSQL, Redis and Apache Kafka run as plain processes under var/."""
