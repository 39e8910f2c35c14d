"""The private parts of faust and aiokafka that pipeline/kafka_edge.py uses still exist, of the kind
it expects, on the libraries' real objects (built, never connected); and no other module of
``pipeline/`` names a private attribute. The integration tests use them against a real broker."""

from __future__ import annotations

import ast
import asyncio
import collections
import inspect
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import Producer

from pipeline import kafka_edge

NOWHERE = "127.0.0.1:9"  # the discard port: nothing here connects
# private names of the standard library that are its public API (namedtuple's, os._exit, sys._current_frames)
STANDARD = {"_replace", "_asdict", "_fields", "_exit", "_current_frames"}


def test_faust_has_the_producer_names_used() -> None:
    assert callable(Producer._ensure_producer)
    assert hasattr(Producer, "_producer")  # None until started: started_producer reads it


def test_aiokafka_consumer_and_client_have_the_names_used() -> None:
    async def scenario() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=NOWHERE)
        client = kafka_edge.consumer_client(consumer)
        assert isinstance(client, AIOKafkaClient)
        assert hasattr(consumer, "_coordinator")  # set by start(): committed_with_metadata asks it
        assert isinstance(client._conns, dict) and client._md_update_fut is None
        assert isinstance(client._md_update_waiter, asyncio.Future) and not client._md_update_waiter.done()
        assert (
            kafka_edge.idle_metadata_update(client) is None and list(kafka_edge.waiting_metadata_requests(client)) == []
        )

        pending = client._md_update_fut = asyncio.get_running_loop().create_future()  # an update, the task asleep
        assert kafka_edge.idle_metadata_update(client) is pending
        kafka_edge.wake_metadata_task(client)
        assert kafka_edge.idle_metadata_update(client) is None and client._md_update_waiter.done()

        connection = AIOKafkaConnection("127.0.0.1", 9)
        assert isinstance(connection._requests, collections.deque)
        answered, waiting = asyncio.get_running_loop().create_future(), asyncio.get_running_loop().create_future()
        answered.set_result(None)
        connection._requests.extend([(7, MetadataRequest([]), answered), (8, MetadataRequest([]), waiting)])
        client._conns[("127.0.0.1", 9)] = connection
        assert list(kafka_edge.waiting_metadata_requests(client)) == [(("127.0.0.1", 9), connection, 8)]
        waiting.cancel()

    asyncio.run(scenario())
    assert inspect.iscoroutinefunction(GroupCoordinator.fetch_committed_offsets)
    assert list(inspect.signature(GroupCoordinator.fetch_committed_offsets).parameters) == ["self", "partitions"]


def test_aiokafka_producer_has_the_names_the_backlog_reads() -> None:
    async def scenario() -> dict:  # type: ignore[type-arg]
        producer = AIOKafkaProducer(bootstrap_servers=NOWHERE)
        await producer._message_accumulator.add_message(TopicPartition("cc.events", 1), None, b"x", timeout=1)
        try:
            return kafka_edge.producer_backlog(producer)
        finally:
            await producer.stop()

    backlog = asyncio.run(scenario())
    assert list(backlog["queued"]) == ["cc.events/1"] and backlog["queued"]["cc.events/1"][0] == 1
    assert backlog["awaiting_acks"] == backlog["nodes_in_flight"] == backlog["muted"] == []


def private_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each private attribute ``path`` reads of an object not its own (``self``,
    ``cls``), by attribute or by ``getattr``/``hasattr``/``setattr`` with a constant name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        name = None
        if isinstance(node, ast.Attribute):
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            name = None if own else node.attr
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) > 1:
            named = node.args[1]
            if node.func.id in ("getattr", "hasattr", "setattr") and isinstance(named, ast.Constant):
                name = str(named.value)
        if name and name.startswith("_") and not name.startswith("__") and name not in STANDARD:
            found.append((node.lineno, name))
    return found


def test_no_module_but_kafka_edge_names_a_private_attribute() -> None:
    package = Path(kafka_edge.__file__).parent
    found = {str(path.relative_to(package)): names for path in sorted(package.rglob("*.py"))
             if path.name != "kafka_edge.py" and (names := private_names(path))}  # fmt: skip
    assert found == {}, "name it in pipeline/kafka_edge.py, listed, with its check here"
    assert private_names(Path(kafka_edge.__file__)), "the scan finds nothing: it proves nothing"
