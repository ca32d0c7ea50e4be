"""The peer of a pooled GPU block from JS: cuMemAlloc + cuMemFree of the same
size called from Python through ctypes, on the primary context of device 0.
Usage: cuda_raw.py BYTES PAIRS; prints {"bytes", "pairNs"} (best of 3 rounds)."""
import ctypes
import json
import sys
import time


def check(status, what):
    if status != 0:
        raise SystemExit(f"{what} failed with CUresult {status}")


def main():
    size, pairs = int(sys.argv[1]), int(sys.argv[2])
    cuda = ctypes.CDLL("libcuda.so.1")
    check(cuda.cuInit(0), "cuInit")
    device = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
    context = ctypes.c_void_p()
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(context), device), "cuDevicePrimaryCtxRetain")
    check(cuda.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    alloc, free = cuda.cuMemAlloc_v2, cuda.cuMemFree_v2
    pointer = ctypes.c_uint64()
    ref = ctypes.byref(pointer)
    for _ in range(min(pairs, 200)):
        check(alloc(ref, ctypes.c_size_t(size)), "cuMemAlloc")
        check(free(pointer), "cuMemFree")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter_ns()
        for _ in range(pairs):
            alloc(ref, ctypes.c_size_t(size))
            free(pointer)
        best = min(best, (time.perf_counter_ns() - started) / pairs)
    print(json.dumps({"bytes": size, "pairNs": best}))


if __name__ == "__main__":
    main()
