"""Rank 1 raises while rank 0 waits in a collective; run_guarded must end the whole job."""
import fastconv.distributed as dist


def main():
    dist.barrier()
    if dist.rank() == 1:
        raise RuntimeError("boom on rank 1")
    dist.broadcast_object("waiting for rank 1 forever", root=1)  # never matched by rank 1


if __name__ == "__main__":
    dist.run_guarded(main)
