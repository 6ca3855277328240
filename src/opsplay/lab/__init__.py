"""The podman lab: Debian 12 containers with systemd, PostgreSQL and nginx.

``images`` builds (and caches by recipe hash) the lab image; ``hosts`` starts,
waits for and removes the lab hosts and writes their Ansible inventory.
"""
