"""torchaudio on the CPU at a given thread count, for the scaling table:
MelSpectrogram + AmplitudeToDB + MFCC over one-second 16 kHz clips, in
batches of 64. Prints {"perSec": audio-seconds per second}."""
import json
import sys
import time

import torch
import torchaudio

threads, n = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
sr = 16000
mel = torchaudio.transforms.MelSpectrogram(sr, n_fft=512, hop_length=160, n_mels=64, norm="slaney", mel_scale="slaney")
to_db = torchaudio.transforms.AmplitudeToDB(top_db=80)
mfcc = torchaudio.transforms.MFCC(sr, n_mfcc=13, melkwargs={"n_fft": 512, "hop_length": 160, "n_mels": 64})
batch = torch.randn(64, sr) * 0.1


def run():
    for _ in range(n // 64):
        to_db(mel(batch))
        mfcc(batch)


run()
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"perSec": (n // 64) * 64 / best}))
