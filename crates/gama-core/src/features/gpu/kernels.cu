// Feature extraction kernels for a batch of clips, compiled at run time by
// NVRTC. The clips lie one after another in `samples`; clip c holds samples
// sample_start[c] .. sample_start[c + 1] and frames frame_start[c] ..
// frame_start[c + 1] of the batch (`frame_start` has clips + 1 entries).
// Each kernel runs one block per frame (blockIdx.x = frame of the batch).
//
// Numerics follow the CPU extractor (src/features/extract.rs): frames are
// windowed and transformed in double precision, powers are rounded to
// float, filters and DCT are applied in float, and librosa's constants are
// the same (amin 1e-10, zero-crossing threshold 1e-10, rolloff 85%).

// Feature indices: the order of `Feature` in options.rs.
#define F_STFT 0
#define F_POWER 1
#define F_MEL 2
#define F_LOG_MEL 3
#define F_MFCC 4
#define F_RMS 5
#define F_ZCR 6
#define F_CENTROID 7
#define F_BANDWIDTH 8
#define F_ROLLOFF 9
#define F_FLATNESS 10
#define F_CHROMA 11
#define N_FEATURES 12

#define AMIN 1e-10f
#define ZC_THRESHOLD 1e-10f
#define ROLL_PERCENT 0.85f
#define N_CHROMA 12
#define NEG_INF __int_as_float(0xff800000)
#define FLT_MIN_NORMAL 1.17549435e-38f

// Where each clip's results go: clip c's buffer starts at out_base[c]
// floats into `out`; feature f lies at frames_of_clip * prefix[f] in it
// (prefix[f] < 0: not asked for), `bins[f]` values per frame.
struct Layout {
    int prefix[N_FEATURES];
    int bins[N_FEATURES];
};

// The clip that frame g of the batch belongs to (binary search).
__device__ __forceinline__ int clip_of(const unsigned int* frame_start, int clips, unsigned int g) {
    int lo = 0, hi = clips - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (frame_start[mid] <= g) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// Row `local` of feature f of clip c (frames_c frames).
__device__ __forceinline__ float* row(float* out, const unsigned long long* out_base, const Layout& l,
                                      int c, unsigned int frames_c, unsigned int local, int f) {
    return out + out_base[c] + (unsigned long long)frames_c * l.prefix[f] + (unsigned long long)local * l.bins[f];
}

// Sample t of a clip of `len` samples, padded as numpy.pad does (reflect or zeros).
__device__ __forceinline__ float padded(const float* x, long long len, long long t, int reflect) {
    if (t >= 0 && t < len) return x[t];
    if (!reflect) return 0.0f;
    if (len == 1) return x[0];
    long long period = 2 * (len - 1);
    long long m = t % period;
    if (m < 0) m += period;
    return x[m < len ? m : period - m];
}

// Sum over the block (every thread gets it). `scratch` holds 32 doubles.
__device__ double block_sum(double v, double* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}

// Maximum over the block (every thread gets it). `scratch` holds 32 floats.
__device__ float block_max(float v, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : NEG_INF;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    return scratch[0];
}

// atomicMax for floats of either sign.
__device__ __forceinline__ void atomic_max_float(float* at, float v) {
    if (v >= 0.0f) atomicMax((int*)at, __float_as_int(v));
    else atomicMin((unsigned int*)at, __float_as_uint(v));
}

// Sets `n` floats to `value`.
extern "C" __global__ void fill(float* out, unsigned int n, float value) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = value;
}

// Windowed frames, n_fft doubles each, of the centred (or not) clips.
extern "C" __global__ void frame_signal(const float* samples, const unsigned long long* sample_start,
                                        const unsigned int* frame_start, int clips, const double* window,
                                        int n_fft, int hop, int offset, int reflect, double* frames) {
    unsigned int g = blockIdx.x;
    int c = clip_of(frame_start, clips, g);
    const float* x = samples + sample_start[c];
    long long len = (long long)(sample_start[c + 1] - sample_start[c]);
    long long start = (long long)(g - frame_start[c]) * hop - offset;
    double* frame = frames + (unsigned long long)g * n_fft;
    for (int i = threadIdx.x; i < n_fft; i += blockDim.x) {
        frame[i] = (double)padded(x, len, start + i, reflect) * window[i];
    }
}

// Every feature computed from a frame's spectrum: stft, power, mel, the
// log-mel rows (into `log_mel`, one row of n_mels per batch frame, with each
// clip's peak in `peaks`), centroid, bandwidth, rolloff, flatness and chroma.
// Dynamic shared memory: 2 * bins floats.
extern "C" __global__ void spectral(const double* spectrum, int bins, const unsigned int* frame_start, int clips,
                                    Layout l, const unsigned long long* out_base, float* out,
                                    int mel_source, float power,
                                    const int* mel_start, const int* mel_len, const int* mel_at, const float* mel_w,
                                    int n_mels, float* log_mel, float* peaks,
                                    const float* freqs, const float* chroma) {
    extern __shared__ float shared[];
    float* pow_row = shared;
    float* mag = shared + bins;
    __shared__ double dsum[32];
    __shared__ float fmax_scratch[32];
    unsigned int g = blockIdx.x;
    int c = clip_of(frame_start, clips, g);
    unsigned int frames_c = frame_start[c + 1] - frame_start[c];
    unsigned int local = g - frame_start[c];
    const double* z = spectrum + 2ull * g * bins;
    bool need_mag = l.prefix[F_STFT] >= 0 || l.prefix[F_CENTROID] >= 0 || l.prefix[F_BANDWIDTH] >= 0
        || l.prefix[F_ROLLOFF] >= 0 || (n_mels > 0 && mel_source != 0);
    for (int k = threadIdx.x; k < bins; k += blockDim.x) {
        double re = z[2 * k], im = z[2 * k + 1];
        float p = (float)(re * re + im * im);
        pow_row[k] = p;
        if (need_mag) mag[k] = sqrtf(p);
    }
    __syncthreads();
    if (l.prefix[F_STFT] >= 0) {
        float* r = row(out, out_base, l, c, frames_c, local, F_STFT);
        for (int k = threadIdx.x; k < bins; k += blockDim.x) r[k] = mag[k];
    }
    if (l.prefix[F_POWER] >= 0) {
        float* r = row(out, out_base, l, c, frames_c, local, F_POWER);
        for (int k = threadIdx.x; k < bins; k += blockDim.x) r[k] = pow_row[k];
    }
    if (n_mels > 0) {
        float* mel_row = l.prefix[F_MEL] >= 0 ? row(out, out_base, l, c, frames_c, local, F_MEL) : 0;
        float* db_row = log_mel ? log_mel + (unsigned long long)g * n_mels : 0;
        float peak = NEG_INF;
        for (int m = threadIdx.x; m < n_mels; m += blockDim.x) {
            const float* w = mel_w + mel_at[m];
            int s = mel_start[m], n = mel_len[m];
            float v = 0.0f;
            for (int j = 0; j < n; j++) {
                float src = mel_source == 0 ? pow_row[s + j] : mel_source == 1 ? mag[s + j] : powf(mag[s + j], power);
                v += w[j] * src;
            }
            if (mel_row) mel_row[m] = v;
            if (db_row) {
                float db = 4.342944819032518f * logf(fmaxf(v, AMIN));
                db_row[m] = db;
                peak = fmaxf(peak, db);
            }
        }
        if (db_row) {
            peak = block_max(peak, fmax_scratch);
            if (threadIdx.x == 0) atomic_max_float(peaks + c, peak);
        }
    }
    if (l.prefix[F_CENTROID] >= 0 || l.prefix[F_BANDWIDTH] >= 0 || l.prefix[F_ROLLOFF] >= 0) {
        double total = 0.0, weighted = 0.0;
        for (int k = threadIdx.x; k < bins; k += blockDim.x) {
            total += mag[k];
            weighted += (double)mag[k] * freqs[k];
        }
        total = block_sum(total, dsum);
        weighted = block_sum(weighted, dsum);
        double norm = total > 1.17549435e-38 ? total : 1.0;
        double centroid = weighted / norm;
        if (l.prefix[F_CENTROID] >= 0 && threadIdx.x == 0)
            row(out, out_base, l, c, frames_c, local, F_CENTROID)[0] = (float)centroid;
        if (l.prefix[F_BANDWIDTH] >= 0) {
            double spread = 0.0;
            for (int k = threadIdx.x; k < bins; k += blockDim.x) {
                double d = freqs[k] - centroid;
                spread += (mag[k] / norm) * d * d;
            }
            spread = block_sum(spread, dsum);
            if (threadIdx.x == 0) row(out, out_base, l, c, frames_c, local, F_BANDWIDTH)[0] = (float)sqrt(spread);
        }
        if (l.prefix[F_ROLLOFF] >= 0 && threadIdx.x == 0) {
            float threshold = ROLL_PERCENT * (float)total;
            float cumulative = 0.0f;
            int at = 0;
            for (int k = 0; k < bins; k++) {
                cumulative += mag[k];
                if (cumulative >= threshold) { at = k; break; }
            }
            row(out, out_base, l, c, frames_c, local, F_ROLLOFF)[0] = freqs[at];
        }
    }
    if (l.prefix[F_FLATNESS] >= 0) {
        double log_sum = 0.0, total = 0.0;
        for (int k = threadIdx.x; k < bins; k += blockDim.x) {
            double p = (double)fmaxf(pow_row[k], AMIN);
            log_sum += log(p);
            total += p;
        }
        log_sum = block_sum(log_sum, dsum);
        total = block_sum(total, dsum);
        if (threadIdx.x == 0)
            row(out, out_base, l, c, frames_c, local, F_FLATNESS)[0] = (float)(exp(log_sum / bins) / (total / bins));
    }
    if (l.prefix[F_CHROMA] >= 0) {
        float* r = row(out, out_base, l, c, frames_c, local, F_CHROMA);
        __shared__ float pitch[N_CHROMA];
        if (threadIdx.x < N_CHROMA) {
            const float* w = chroma + threadIdx.x * bins;
            float v = 0.0f;
            for (int k = 0; k < bins; k++) v += w[k] * pow_row[k];
            pitch[threadIdx.x] = v;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            float peak = 0.0f;
            for (int i = 0; i < N_CHROMA; i++) peak = fmaxf(peak, fabsf(pitch[i]));
            for (int i = 0; i < N_CHROMA; i++) r[i] = peak > FLT_MIN_NORMAL ? pitch[i] / peak : pitch[i];
        }
    }
}

// Floors each log-mel row at its clip's peak minus top_db (when has_top_db),
// writes logMel when asked for and the MFCCs (dct: n_mfcc rows of n_mels).
// Dynamic shared memory: n_mels floats.
extern "C" __global__ void finish(const float* log_mel, int n_mels, const unsigned int* frame_start, int clips,
                                  Layout l, const unsigned long long* out_base, float* out,
                                  const float* peaks, int has_top_db, float top_db,
                                  const float* dct, int n_mfcc) {
    extern __shared__ float db[];
    unsigned int g = blockIdx.x;
    int c = clip_of(frame_start, clips, g);
    unsigned int frames_c = frame_start[c + 1] - frame_start[c];
    unsigned int local = g - frame_start[c];
    float floor_db = has_top_db ? peaks[c] - top_db : NEG_INF;
    const float* src = log_mel + (unsigned long long)g * n_mels;
    float* log_row = l.prefix[F_LOG_MEL] >= 0 ? row(out, out_base, l, c, frames_c, local, F_LOG_MEL) : 0;
    for (int m = threadIdx.x; m < n_mels; m += blockDim.x) {
        float v = fmaxf(src[m], floor_db);
        db[m] = v;
        if (log_row) log_row[m] = v;
    }
    __syncthreads();
    if (l.prefix[F_MFCC] >= 0) {
        float* r = row(out, out_base, l, c, frames_c, local, F_MFCC);
        for (int k = threadIdx.x; k < n_mfcc; k += blockDim.x) {
            const float* basis = dct + (unsigned long long)k * n_mels;
            float v = 0.0f;
            for (int m = 0; m < n_mels; m++) v += basis[m] * db[m];
            r[k] = v;
        }
    }
}

// RMS and zero-crossing rate of each frame, from the samples: RMS over the
// frame as `center` pads it (pad mode), ZCR over the edge-padded signal.
extern "C" __global__ void time_domain(const float* samples, const unsigned long long* sample_start,
                                       const unsigned int* frame_start, int clips, int n_fft, int hop, int offset,
                                       int reflect, Layout l, const unsigned long long* out_base, float* out) {
    __shared__ double dsum[32];
    unsigned int g = blockIdx.x;
    int c = clip_of(frame_start, clips, g);
    unsigned int frames_c = frame_start[c + 1] - frame_start[c];
    unsigned int local = g - frame_start[c];
    const float* x = samples + sample_start[c];
    long long len = (long long)(sample_start[c + 1] - sample_start[c]);
    long long start = (long long)local * hop - offset;
    if (l.prefix[F_RMS] >= 0) {
        double energy = 0.0;
        for (int i = threadIdx.x; i < n_fft; i += blockDim.x) {
            float v = padded(x, len, start + i, reflect);
            energy += (double)v * v;
        }
        energy = block_sum(energy, dsum);
        if (threadIdx.x == 0) row(out, out_base, l, c, frames_c, local, F_RMS)[0] = (float)sqrt(energy / n_fft);
    }
    if (l.prefix[F_ZCR] >= 0) {
        double crossings = 0.0;
        for (int i = threadIdx.x; i < n_fft - 1; i += blockDim.x) {
            long long a = start + i, b = a + 1;
            float xa = x[a < 0 ? 0 : (a >= len ? len - 1 : a)];
            float xb = x[b < 0 ? 0 : (b >= len ? len - 1 : b)];
            int na = fabsf(xa) > ZC_THRESHOLD && signbit(xa);
            int nb = fabsf(xb) > ZC_THRESHOLD && signbit(xb);
            crossings += (double)(na ^ nb);
        }
        crossings = block_sum(crossings, dsum);
        if (threadIdx.x == 0) row(out, out_base, l, c, frames_c, local, F_ZCR)[0] = (float)(crossings / n_fft);
    }
}
