"""Incident types with diagnosis/remediation checklists, extracted from the runbooks.

Plain data, no Django imports. Sources are in ``/work/shared/reference/``;
docs/runbook-sources.md maps every item to the file and section it came from.

Checklist conventions:

* Items are listed in the order the runbooks say to work them. Phases are labels, so a
  remediation item can come before a diagnosis item where the runbook acts first
  (e.g. "Stop writes immediately" for data corruption, containment for a breach).
* ``phase`` follows the block the step sits in: "Diagnosis:" / "Resolution:" in
  incident-response-guide.md, "Investigation Steps:" / "Common Causes & Solutions:" in
  incident-response-runbook.md, "Phase 3: Diagnosis" in incident-response-playbook.md.
  Steps of numbered procedures (emergency-procedures.md, the guide's security-breach
  "Response:", the playbook's "Immediate Actions") are "diagnosis" when the step verifies,
  assesses, diagnoses or identifies the problem and "remediation" otherwise (containing,
  communicating, preserving evidence, fixing, verifying the fix, follow-up). One exception
  is listed in docs/runbook-sources.md (data corruption: "Assess damage").
* Commands are kept verbatim (placeholders such as ``[service-id]`` included) in backticks.
* ``default_severity`` is a code of the default P0-P3 scale (presets.PRESETS["default"]).
"""

from dataclasses import dataclass

DIAGNOSIS = "diagnosis"
REMEDIATION = "remediation"


@dataclass(frozen=True)
class ChecklistItemPreset:
    phase: str  # "diagnosis" or "remediation"
    text: str


@dataclass(frozen=True)
class IncidentTypePreset:
    slug: str
    name: str
    description: str
    default_severity: str | None  # code in the default scale if the runbook suggests one
    implies_security: bool
    implies_data_loss: bool
    checklist: tuple[ChecklistItemPreset, ...]
    source: str  # runbook file + section


def _diag(text: str) -> ChecklistItemPreset:
    return ChecklistItemPreset(DIAGNOSIS, text)


def _fix(text: str) -> ChecklistItemPreset:
    return ChecklistItemPreset(REMEDIATION, text)


_GUIDE = "incident-response-guide.md"
_PLAYBOOK = "incident-response-playbook.md"
_RUNBOOK = "incident-response-runbook.md"
_EMERGENCY = "emergency-procedures.md"


COMPLETE_OUTAGE = IncidentTypePreset(
    slug="complete-outage",
    name="Complete Application Outage",
    description=(
        "Website returns 502/503 error, health endpoint unreachable, containers stopped; "
        "the system is completely unavailable."
    ),
    default_severity="P0",
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag("Verify the outage: check from multiple sources and confirm it is not a local issue"),
        _diag("Assess the scope: what's affected, how many users are impacted, when did it start?"),
        _fix("Communicate: alert stakeholders immediately and post a status update"),
        _diag(
            "Check container status: `docker ps -a | grep asset-registration` / `railway status`"
        ),
        _diag(
            "Check logs: `docker logs asset-registration-backend --tail=100` / "
            "`railway logs --tail=100`"
        ),
        _diag("Check recent deployments"),
        _diag("Check external dependencies"),
        _fix("Quick fix: restart the application: `railway restart` (or `docker-compose restart`)"),
        _fix(
            "If restart fails: check logs for the root cause (port binding failure, database "
            "connection failure, environment variable missing, memory limit exceeded)"
        ),
        _fix("If configuration issue: fix and redeploy"),
        _fix("If persistent: rollback to previous version"),
        _fix(
            "Remediate by cause: recent deploy: rollback; external: wait/failover; code bug: hotfix"
        ),
        _fix("Verify the fix: confirm system operational and monitor closely"),
        _fix(
            "Post-mortem: document what happened, document the resolution, "
            "identify prevention measures"
        ),
    ),
    source=(
        f"{_GUIDE} § Common Incident Scenarios > Scenario 1: Complete Application Outage; "
        f"{_EMERGENCY} § Emergency Response Procedures > Production System Down"
    ),
)

AUTHENTICATION_FAILURE = IncidentTypePreset(
    slug="authentication-failure",
    name="Authentication System Failure",
    description="Users cannot log in, JWT validation errors, 401 Unauthorized errors.",
    default_severity="P0",
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag("Check JWT configuration: `railway run env | grep JWT_SECRET`"),
        _diag(
            "Test login endpoint: `curl -X POST https://kars.jvhlabs.com/api/auth/login "
            '-H "Content-Type: application/json" '
            '-d \'{"email":"test@example.com","password":"test"}\'`'
        ),
        _diag(r'Check logs for auth errors: `railway logs | grep -i "auth\|jwt\|token"`'),
        _fix(
            "If JWT_SECRET missing/changed: verify JWT_SECRET is set correctly: `railway variables`"
        ),
        _fix(
            "If secret rotated accidentally: restore previous JWT_SECRET, or inform users tokens "
            "are invalidated (requires re-login)"
        ),
        _fix(
            "If database issue: check users table exists: "
            '`railway run psql $DATABASE_URL -c "SELECT COUNT(*) FROM users;"`'
        ),
        _fix("If code issue: review recent auth-related changes; rollback if necessary"),
    ),
    source=f"{_GUIDE} § Common Incident Scenarios > Scenario 2: Authentication System Failure",
)

DATABASE_DEGRADATION = IncidentTypePreset(
    slug="database-degradation",
    name="Database Performance Degradation",
    description="Slow API responses (>5 seconds), timeout errors, high database CPU/memory usage.",
    default_severity="P1",
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag(
            'Check query performance (PostgreSQL): `railway run psql $DATABASE_URL -c "'
            "SELECT query, calls, mean_exec_time FROM pg_stat_statements "
            'ORDER BY mean_exec_time DESC LIMIT 10;"`'
        ),
        _diag(
            "Check active connections: "
            '`railway run psql $DATABASE_URL -c "SELECT count(*) FROM pg_stat_activity;"`'
        ),
        _diag(
            'Check database size: `railway run psql $DATABASE_URL -c "'
            'SELECT pg_size_pretty(pg_database_size(current_database()));"`'
        ),
        _diag(
            "For SQLite: check file size: "
            "`docker exec asset-registration-backend ls -lh /app/data/assets.db`"
        ),
        _fix("Short-term: add missing indexes"),
        _fix(
            "Short-term: kill long-running queries (PostgreSQL): `railway run psql $DATABASE_URL "
            "-c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active' "
            "AND query_start < NOW() - INTERVAL '5 minutes';\"`"
        ),
        _fix("Medium-term: optimize slow queries"),
        _fix("Medium-term: add appropriate indexes"),
        _fix("Medium-term: implement query caching"),
        _fix("Long-term: scale database (Railway: upgrade plan)"),
        _fix("Long-term: implement read replicas"),
        _fix("Long-term: consider query optimization"),
    ),
    source=f"{_GUIDE} § Common Incident Scenarios > Scenario 3: Database Performance Degradation",
)

DEPLOYMENT_FAILURE = IncidentTypePreset(
    slug="deployment-failure",
    name="Deployment Failure",
    description=(
        "GitHub Actions build fails, Railway deployment fails, new version not live after deploy."
    ),
    default_severity=None,
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag("Check GitHub Actions: https://github.com/humac/kars/actions"),
        _diag("Check Railway deployment logs: `railway logs --deployment latest`"),
        _diag("Review build logs for npm install/build errors, test failures, Docker build errors"),
        _fix("If tests failing: fix tests locally and push fix to develop/main; CI will re-run"),
        _fix("If build errors: review package.json changes and verify dependencies"),
        _fix("If build errors: test build locally (`npm run build`) and push fix"),
        _fix(
            "If Railway deployment stuck: check Railway status (https://status.railway.app), "
            "cancel deployment (`railway deployment cancel`), retry deployment (`railway up`)"
        ),
        _fix(
            "If persistent issues: rollback to previous version (`railway rollback`, or Portainer "
            "rollback to previous image), investigate offline, deploy fix when ready"
        ),
        _fix("Application rollback: identify last good version: `git log --oneline -10`"),
        _fix(
            "Application rollback: checkout previous version (`git checkout <commit-hash>`) "
            "and deploy: `npm run build && npm start`"
        ),
        _fix("Application rollback: verify: `curl http://localhost:3000/api/health`"),
        _fix("Database rollback: list migrations: `npx prisma migrate status`"),
        _fix(
            "Database rollback: rollback last migration "
            "(`npx prisma migrate resolve --rolled-back <migration_name>`) "
            "or restore from backup (`pg_restore -d database_name backup_file.sql`)"
        ),
        _fix(
            "Configuration rollback: check config history (`git log --oneline -- .env.example`) "
            "and restore previous config: `git checkout <commit> -- .env.example`"
        ),
    ),
    source=(
        f"{_GUIDE} § Common Incident Scenarios > Scenario 4: Deployment Failure "
        f"(+ § P0 - Critical Response Procedure > 7. Deployment Failure); "
        f"{_EMERGENCY} § Rollback Procedures"
    ),
)

DATA_CORRUPTION = IncidentTypePreset(
    slug="data-corruption",
    name="Data Corruption or Loss",
    description="Missing records, incorrect data returned, database errors in logs.",
    default_severity="P0",
    implies_security=False,
    implies_data_loss=True,
    checklist=(
        _fix(
            "STOP writes immediately to prevent further corruption: put the system in read-only "
            "if possible, or stop the application: `railway scale web=0` (or `docker-compose down`)"
        ),
        _diag(
            "Check database integrity (SQLite): `docker exec asset-registration-backend "
            'sqlite3 /app/data/assets.db "PRAGMA integrity_check;"`'
        ),
        _diag(
            "Check database integrity (PostgreSQL): "
            '`railway run psql $DATABASE_URL -c "SELECT * FROM pg_stat_database_conflicts;"`'
        ),
        _diag(
            "Verify record counts: `railway run psql $DATABASE_URL -c \"SELECT 'users' as table, "
            "COUNT(*) as count FROM users UNION ALL SELECT 'assets', COUNT(*) FROM assets "
            "UNION ALL SELECT 'companies', COUNT(*) FROM companies;\"`"
        ),
        _diag(
            'Check audit logs for deletions: `railway run psql $DATABASE_URL -c "SELECT * FROM '
            "audit_logs WHERE action = 'DELETE' ORDER BY timestamp DESC LIMIT 50;\"`"
        ),
        _diag("Assess damage: identify what data is affected; can we identify good data?"),
        _diag("Determine when corruption occurred"),
        _diag("Find last known good backup (do we have backups?)"),
        _fix("Backup current state, even if corrupted, for forensics"),
        _fix("Test backup integrity and restore to a separate environment first"),
        _fix("Restore from backup (see RUNBOOK.md Database Operations)"),
        _fix(
            "If backup not available: attempt database recovery tools, reconstruct from audit "
            "logs (if available), contact affected users"
        ),
        _fix("Verify data: check restored data is correct and identify any gaps"),
        _fix("Communicate: inform affected users and document data loss"),
        _fix(
            "Investigate root cause: review code changes, check for malicious activity, "
            "implement safeguards"
        ),
    ),
    source=(
        f"{_GUIDE} § Common Incident Scenarios > Scenario 5: Data Corruption or Loss; "
        f"{_EMERGENCY} § Emergency Response Procedures > Data Corruption"
    ),
)

SECURITY_BREACH = IncidentTypePreset(
    slug="security-breach",
    name="Security Breach",
    description=(
        "Unauthorized access detected, suspicious audit log entries, external security report."
    ),
    default_severity="P0",
    implies_security=True,
    implies_data_loss=False,
    checklist=(
        _diag(
            'Verify breach: review audit logs: `railway run psql $DATABASE_URL -c "SELECT * FROM '
            "audit_logs WHERE timestamp > NOW() - INTERVAL '24 hours' ORDER BY timestamp DESC;\"`"
        ),
        _fix("Contain immediately: revoke/disable compromised credentials"),
        _fix("Contain: block suspicious IPs and isolate affected systems"),
        _fix(
            "Contain: rotate JWT_SECRET (invalidates all sessions): `railway variables set "
            "JWT_SECRET=$(node -e \"console.log(require('crypto').randomBytes(64)"
            ".toString('hex'))\")` then `railway restart`"
        ),
        _fix("Alert security team IMMEDIATELY"),
        _fix(
            "Preserve evidence (don't modify/delete it): screenshot everything, download all logs "
            "(`railway logs > incident-logs-$(date +%Y%m%d).txt`), export audit logs, take "
            "database snapshot"
        ),
        _diag(
            "Assess impact: what data was accessed? what data was modified or exposed? "
            "was data exfiltrated?"
        ),
        _diag("Assess scope: how long was the exposure?"),
        _fix(
            "Notify affected parties: internal stakeholders, affected users (if PII exposed), "
            "legal team (if required by law); document for legal/compliance"
        ),
        _fix("Remediate: patch vulnerability and rotate all credentials"),
        _fix("Remediate: review access logs"),
        _fix("Remediate: enhance security controls; reset all user passwords (if necessary)"),
        _fix(
            "Post-incident: security audit, implement additional safeguards, "
            "update security procedures"
        ),
        _fix("Document: timeline of events, actions taken, lessons learned"),
    ),
    source=(
        f"{_GUIDE} § Common Incident Scenarios > Scenario 6: Security Breach; "
        f"{_EMERGENCY} § Emergency Response Procedures > Security Breach"
    ),
)

MEMORY_DISK_FULL = IncidentTypePreset(
    slug="memory-disk-full",
    name="Memory/Disk Full",
    description="Memory or disk full: something is using up memory or disk space.",
    default_severity=None,
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag("Identify the cause: what's using resources?"),
        _diag("Identify the cause: is it a leak or legitimate?"),
        _fix("Free immediate space: clear caches"),
        _fix("Free immediate space: delete temp files"),
        _fix("Free immediate space: kill memory hogs"),
        _fix("Prevent recurrence: add monitoring"),
        _fix("Prevent recurrence: set up alerts"),
        _fix("Prevent recurrence: add cleanup cron jobs"),
        _diag("Root cause: why did this happen?"),
        _fix("Root cause: fix the underlying issue"),
    ),
    source=f"{_EMERGENCY} § Emergency Response Procedures > Memory/Disk Full",
)

INTEGRATION_FAILURE = IncidentTypePreset(
    slug="integration-failure",
    name="Integration Failure",
    description="External API errors, sync failures.",
    default_severity="P1",
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag(
            "Check external service status: `curl https://api.xero.com/health`, "
            "`curl https://api.shopify.com/health`"
        ),
        _diag(
            "Check external APIs: `curl -I https://api.xero.com`, `curl -I https://api.shopify.com`"
        ),
        _diag("Verify API keys: `railway variables get XERO_CLIENT_ID --service [service-id]`"),
        _fix(
            "Enable fallback mode: `railway variables set USE_FALLBACK=true --service [service-id]`"
        ),
        _fix(
            "Clear integration cache: "
            "`railway variables set CLEAR_INTEGRATION_CACHE=true --service [service-id]`"
        ),
        _fix("Retry failed operations: run retry script for failed webhooks"),
    ),
    source=(
        f"{_PLAYBOOK} § Incident Type Playbooks > Integration Failure "
        f"(+ § Phase 3: Diagnosis > Common Diagnosis Patterns > Connection Issues)"
    ),
)

HIGH_ERROR_RATE = IncidentTypePreset(
    slug="high-error-rate",
    name="High Error Rate",
    description=(
        "Multiple 500 errors in logs, user reports of broken functionality, "
        "error monitoring alerts."
    ),
    default_severity=None,
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag(
            'Check error patterns: `railway logs --service production | grep -E "(ERROR|500)" '
            "| tail -20`"
        ),
        _diag(
            "Check monitoring metrics: "
            "`curl -s https://hausofbasquiat.com/api/monitoring?type=errors | jq '.summary'`"
        ),
        _diag("Check resource usage: `railway metrics --service production`"),
        _diag(
            "Test specific endpoints: `curl -v https://hausofbasquiat.com/api/posts`, "
            "`curl -v https://hausofbasquiat.com/api/users`"
        ),
        _fix("Database overload: optimize queries, scale database"),
        _fix("Memory leaks: restart application, investigate code"),
        _fix("External API issues: check third-party status"),
        _fix("Code bugs: rollback or hotfix deployment"),
    ),
    source=f"{_RUNBOOK} § Common Incident Scenarios > Scenario 3: High Error Rate",
)

PERFORMANCE_DEGRADATION = IncidentTypePreset(
    slug="performance-degradation",
    name="Performance Degradation",
    description="Slow response times, timeouts, high CPU/memory.",
    default_severity="P2",
    implies_security=False,
    implies_data_loss=False,
    checklist=(
        _diag("Check metrics (memory/CPU usage): `railway metrics --service [service-id]`"),
        _diag(
            'Check response times: `curl -w "@curl-format.txt" -o /dev/null '
            "https://[domain]/api/health`"
        ),
        _diag(
            "Identify bottlenecks: "
            '`railway logs --service [service-id] | grep -E "slow|timeout|performance"`'
        ),
        _diag("Review database slow queries"),
        _fix(
            "Clear cache: `railway variables set CACHE_CLEAR=true --service [service-id]` then "
            "`railway restart --service [service-id]`"
        ),
        _fix("Scale horizontally: increase replicas in Railway dashboard"),
        _fix(
            r"Optimize database: `.\scripts\database-operations.ps1 -Operation maintenance "
            r"-Environment production`"
        ),
    ),
    source=(
        f"{_PLAYBOOK} § Incident Type Playbooks > Performance Degradation "
        f"(+ § Phase 3: Diagnosis > Common Diagnosis Patterns > Performance Issues)"
    ),
)


INCIDENT_TYPES: tuple[IncidentTypePreset, ...] = (
    COMPLETE_OUTAGE,
    AUTHENTICATION_FAILURE,
    DATABASE_DEGRADATION,
    DEPLOYMENT_FAILURE,
    DATA_CORRUPTION,
    SECURITY_BREACH,
    MEMORY_DISK_FULL,
    INTEGRATION_FAILURE,
    HIGH_ERROR_RATE,
    PERFORMANCE_DEGRADATION,
)
