"""torchaudio on the GPU, the anchor of `npm run bench -- gpu`:
MelSpectrogram + AmplitudeToDB + MFCC (16 kHz, n_fft 512, hop 160, 64 slaney
mels, 13 MFCCs, float32) over batches of COUNTxSECONDS clips given as
arguments ("64x1 1024x1 16x60"). For each batch prints one JSON line:
{"clips", "seconds", "onDevice", "withCopies"} in audio-seconds per second,
the best of several timed runs (torch.cuda.synchronize around each)."""
import json
import sys
import time

import torch
import torchaudio

sr = 16000
device = torch.device("cuda")
mel = torchaudio.transforms.MelSpectrogram(sr, n_fft=512, hop_length=160, n_mels=64, norm="slaney", mel_scale="slaney").to(device)
to_db = torchaudio.transforms.AmplitudeToDB(top_db=80).to(device)
mfcc = torchaudio.transforms.MFCC(sr, n_mfcc=13, melkwargs={"n_fft": 512, "hop_length": 160, "n_mels": 64, "norm": "slaney", "mel_scale": "slaney"}).to(device)


def features(batch):
    return to_db(mel(batch)), mfcc(batch)


def best_of(fn, budget=1.5):
    fn()
    torch.cuda.synchronize()
    best, spent = float("inf"), 0.0
    runs = 0
    while runs < 5 or (spent < budget and runs < 200):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        took = time.perf_counter() - t
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best


for spec in sys.argv[1:]:
    count, seconds = (int(x) for x in spec.split("x"))
    host = torch.randn(count, sr * seconds) * 0.1
    on_gpu = host.to(device)

    def with_copies():
        a, b = features(host.to(device))
        a.cpu(), b.cpu()

    audio = count * seconds
    print(json.dumps({
        "clips": count,
        "seconds": seconds,
        "onDevice": audio / best_of(lambda: features(on_gpu)),
        "withCopies": audio / best_of(with_copies),
    }), flush=True)
