//! Backup schedules: cron expressions in a time zone, their next run times, and catch-up.
