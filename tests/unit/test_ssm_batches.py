"""GetParameters calls of a long read run side by side, and a failing one is the read's error.
(A fake client through the adapter's client factory: what is tested is the adapter's batching.)"""

import threading

import pytest
from botocore.exceptions import ClientError

from cutover.adapters.aws.ssm import SsmParameterStore
from cutover.errors import AwsError


class FakeSsm:
    def __init__(self, together: int = 1, deny: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()
        # Every call waits until `together` calls are in flight: a sequential read never gets there.
        self.barrier = threading.Barrier(together, timeout=30) if together > 1 else None
        self.deny = deny

    def get_parameters(self, Names, WithDecryption):
        with self.lock:
            self.batches.append(list(Names))
        if self.barrier:
            self.barrier.wait()
        if self.deny in Names:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "GetParameters")
        return {"Parameters": [{"Name": n, "Value": f"v{n}", "Version": 1, "Type": "String"} for n in Names]}


def store(client) -> SsmParameterStore:
    return SsmParameterStore(lambda service: client)


def test_the_batches_of_a_long_read_are_in_flight_together():
    names = [f"/p/{i:02d}" for i in range(48)]
    client = FakeSsm(together=5)  # 48 names: 5 calls, all waiting for each other
    got = store(client).get_many(names)
    assert sorted(got) == names and got["/p/07"].value == "v/p/07"
    assert sorted(len(b) for b in client.batches) == [8, 10, 10, 10, 10]


def test_a_short_read_is_one_call_in_this_thread():
    client = FakeSsm()
    assert set(store(client).get_many(["/a", "/b", "/a"])) == {"/a", "/b"}
    assert client.batches == [["/a", "/b"]]


def test_a_failing_batch_fails_the_read_with_its_names():
    names = [f"/p/{i:02d}" for i in range(25)]
    with pytest.raises(AwsError) as exc:
        store(FakeSsm(deny="/p/13")).get_many(names)
    assert exc.value.operation == "ssm:GetParameters" and "/p/10" in str(exc.value)
