"""The PostgreSQL job queue (`queue`), the worker each process runs (`worker`) and cron (`cron`)."""
