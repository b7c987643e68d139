"""Health thresholds a shared test machine cannot trip: the machine checks (CPU, memory, disk) judge the
host, which the suite itself keeps busy, so tests of other verdicts set them out of reach."""

CALM_MACHINE = {
    "MONITORING__CPU_ALERT_PCT": "100", "MONITORING__CPU_TARGET_PCT": "100",
    "MONITORING__SYSTEM_MEMORY_ALERT_PCT": "100", "MONITORING__SYSTEM_MEMORY_TARGET_PCT": "100",
    "MONITORING__MEMORY_ALERT_MB": "1000000", "MONITORING__MEMORY_TARGET_MB": "1000000",
    "MONITORING__DISK_ALERT_PCT": "100", "MONITORING__DISK_TARGET_PCT": "100",
}
