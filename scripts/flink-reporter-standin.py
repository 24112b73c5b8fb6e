"""Stands in for Flink's Prometheus reporter of a job "wc" in the status and dashboard scenario.

The object exists in the cluster but no Flink runs for it. The series are those a real JobManager and TaskManager
publish (tests/e2e/tests/flink_operator.rs scrapes real ones): fixed rates, and a checkpoint completed every two
seconds. The checkpoint id is computed from the clock at each scrape, not bumped by a loop: a loop sharing two cores
with Flink JVMs and cargo fell behind by up to 44 s in CI, and the scenario read that as a stale checkpoint.

Usage: python3 flink-reporter-standin.py PORT
"""

import http.server
import sys
import time

SERIES = """\
# TYPE flink_taskmanager_job_task_numRecordsInPerSecond gauge
flink_taskmanager_job_task_numRecordsInPerSecond{{job_name="wc",task_name="ReadFromText",subtask_index="0"}} 1200.5
flink_taskmanager_job_task_numRecordsInPerSecond{{job_name="wc",task_name="WriteToText",subtask_index="0"}} 300
# TYPE flink_taskmanager_job_task_backPressuredTimeMsPerSecond gauge
flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{job_name="wc",task_name="ReadFromText",subtask_index="0"}} 250
flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{job_name="wc",task_name="WriteToText",subtask_index="0"}} 0
# TYPE flink_jobmanager_job_lastCompletedCheckpointId gauge
flink_jobmanager_job_lastCompletedCheckpointId{{job_name="wc"}} {checkpoint}
"""

CHECKPOINT_INTERVAL_SECONDS = 2


class Reporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = SERIES.format(checkpoint=int(time.time() // CHECKPOINT_INTERVAL_SECONDS)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # one line a scrape each second would fill the harness's log


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Reporter).serve_forever()
