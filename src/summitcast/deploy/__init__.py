"""Deployment files (nginx, systemd, node settings) rendered from one topology."""
