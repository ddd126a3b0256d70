"""The org roles of the runbooks (incident-response-guide.md "Team Roles" and "Emergency
Contacts"; incident-response-playbook.md contact table; incident-escalation-flow.md matrix)."""

ORG_ROLES = (
    (
        "devops-lead",
        "DevOps Lead",
        "Infrastructure and deployment, cloud platform, CI/CD, "
        "containers, database infrastructure. Escalation: P0 immediately, P1 within 2 hours; "
        "24/7 for P0.",
    ),
    (
        "backend-lead",
        "Backend Lead",
        "API and backend services, database schema and queries, "
        "authentication, integrations. Escalation: P0 immediately, P1 if a backend issue is "
        "identified, data loss immediately. Business hours plus on call.",
    ),
    (
        "frontend-lead",
        "Frontend Lead",
        "UI/UX, client-side errors, component problems, browser "
        "compatibility. Escalation: P1 if a frontend issue is identified.",
    ),
    (
        "security-team",
        "Security Team",
        "Security incidents and vulnerabilities, data breach "
        "response, access control, compliance. Escalation: any suspected security incident "
        "immediately; 24/7. Contact: security@company.com.",
    ),
    (
        "database-admin",
        "Database Admin",
        "Database performance, replication, backups and restores (playbook contact table).",
    ),
    (
        "engineering-manager",
        "Engineering Manager",
        "Escalation: P0 unresolved after 2 hours, "
        "P1 unresolved after 4 hours, data loss immediately.",
    ),
    (
        "cto",
        "CTO",
        "Executive escalation: P0 unresolved after 4 hours, P1 after 8 hours (extended outage).",
    ),
)
