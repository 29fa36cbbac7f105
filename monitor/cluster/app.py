"""The Celery app: RabbitMQ as the broker, one durable queue, late acknowledgements.

The database is the truth about chunks (monitor.store.chunks), so there is no result backend.
A message is acknowledged only after its chunk ran (`acks_late`), and requeued when the worker
process running it dies (`task_reject_on_worker_lost`); each worker process takes one message at
a time (`worker_prefetch_multiplier = 1`), so a chunk never waits behind another in a busy process.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from monitor.settings import Settings

#: the one task's name (the dispatch sends it by name, without importing the task module)
RUN_CHUNK = "pricemon.run_chunk"


def make_app(settings: Settings) -> Celery:
    """A Celery app for `settings.cluster` (the broker password comes from its environment variable)."""
    cluster = settings.cluster
    app = Celery("pricemon", set_as_current=False)
    exchange = Exchange(cluster.queue, type="direct", durable=True)
    app.conf.update(
        broker_url=cluster.broker_url_with_password(),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker to come back, however long
        broker_heartbeat=10,
        task_queues=[Queue(cluster.queue, exchange, routing_key=cluster.queue, durable=True)],
        task_default_queue=cluster.queue,
        task_default_exchange=cluster.queue,
        task_default_routing_key=cluster.queue,
        task_default_delivery_mode="persistent",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,  # the CLI configured logging (and its redaction)
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_enable_remote_control=True,
        broker_transport_options={"confirm_publish": True},
    )
    return app
