"""Access control, member isolation and the audit trail (issue 11).

Clients and tokens (who is asking: :class:`gateway.principal.Principal`), the policy of who may
read and write what (hooks on the service's typed pointcuts), and the tamper-evident audit log.
See ``docs/security.md``.
"""
