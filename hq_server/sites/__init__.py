"""Sites and the agents at them: site names and lookups (`registry`), agent enrollment
(`enrollment`), and enrolled agents as admins manage them: revocation, replacement, heartbeat
figures (`agents`); devices as HQ learns them from heartbeats, alarms and job results
(`devices`). Revoking or replacing an agent releases its jobs (hq_server.jobs), so this
package sits above jobs."""
