#!/usr/bin/env python3
"""librosa's side of the features benchmark: the same workload as
benchmark/features/index.js (16 kHz, nFft 512, hop 160, 64 mels, 13 MFCCs;
logMel + mfcc + rms + zcr + spectralCentroid, sharing one STFT), timed single-
threaded and with a process per core. Prints one JSON object."""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import librosa  # noqa: E402

SR, N_FFT, HOP, N_MELS, N_MFCC = 16000, 512, 160, 64, 13


def features(y):
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    mel = librosa.feature.melspectrogram(S=S**2, sr=SR, n_fft=N_FFT, n_mels=N_MELS)
    log_mel = librosa.power_to_db(mel)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)
    rms = librosa.feature.rms(y=y, frame_length=N_FFT, hop_length=HOP)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP)
    centroid = librosa.feature.spectral_centroid(S=S, sr=SR, n_fft=N_FFT, hop_length=HOP)
    return log_mel, mfcc, rms, zcr, centroid


def clips(count, seconds, seed):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(SR * seconds))).astype(np.float32) for _ in range(count)]


def rate(batch, seconds_each, run):
    run(batch[:2])  # warm-up (numba compiles zero_crossings on first use)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - t)
    return len(batch) * seconds_each / best


def serial(batch):
    for y in batch:
        features(y)


def parallel(batch):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(features, batch, chunksize=max(1, len(batch) // (4 * os.cpu_count()))))


if __name__ == "__main__":
    short = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    out = {
        "version": librosa.__version__,
        "single1s": rate(clips(short, 1.0, 1), 1.0, serial),
        "single60s": rate(clips(1, 60.0, 2), 60.0, serial),
        "batch1s": rate(clips(short * 2, 1.0, 3), 1.0, parallel),
    }
    print(json.dumps(out))
