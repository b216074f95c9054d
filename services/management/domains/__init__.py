"""Domains: the hostnames links live on, and their settings."""
