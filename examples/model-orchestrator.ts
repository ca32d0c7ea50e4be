// ModelOrchestrator from the GAMA seed, completed: a GAMAMemoryManager and a
// BatchProcessor, processors registered per operation type, and
// executeParallelTasks grouping tasks by type and running each group through
// the batch processor. PROCESS goes to a JS processor (here: a loudness
// normaliser standing in for a model call); feature extraction and analysis
// run natively on the Rust pool.
import {
  AudioFeatureCache,
  BatchOperationType,
  BatchProcessor,
  GAMAMemoryManager,
  PerformanceProfiler,
  type BatchItem,
  type ExtractOptions,
  type ItemProgress,
  type ResourceStrategy,
} from '../index.js'

type OperationType = (typeof BatchOperationType)[keyof typeof BatchOperationType]

/** One unit of work for the orchestrator. */
export interface OrchestratorTask {
  /** 'process', 'features' or 'analyze'. */
  type: 'process' | 'features' | 'analyze'
  data: Float32Array
  priority?: number
  metadata?: Record<string, unknown>
  onProgress?: (progress: ItemProgress) => void
  signal?: AbortSignal
}

export interface OrchestratorOptions {
  maxMemory?: string
  maxBatchSize?: number
  featureOptions?: ExtractOptions
}

export class ModelOrchestrator {
  readonly memoryManager: GAMAMemoryManager
  readonly featureCache: AudioFeatureCache
  readonly batchProcessor: BatchProcessor
  readonly profiler: PerformanceProfiler

  constructor(options: OrchestratorOptions = {}) {
    // Initialize memory manager
    this.memoryManager = new GAMAMemoryManager({
      maxMemory: options.maxMemory ?? '4GB',
      optimizationThreshold: 70,
    })
    this.featureCache = new AudioFeatureCache({ maxEntries: 10000, maxMemory: '512MB' })

    // Initialize batch processor with memory manager
    this.batchProcessor = new BatchProcessor({
      maxBatchSize: options.maxBatchSize ?? 8,
      memoryManager: this.memoryManager,
      featureCache: this.featureCache,
      featureOptions: options.featureOptions,
    })
    this.profiler = new PerformanceProfiler({
      memoryManager: this.memoryManager,
      featureCache: this.featureCache,
      batchProcessor: this.batchProcessor,
    })

    // Register processors for different operations
    this.registerBatchProcessors()
  }

  private registerBatchProcessors() {
    // Register processor for audio processing tasks
    this.batchProcessor.registerProcessor(BatchOperationType.PROCESS, async (items, resourceStrategy) => {
      // Process items in parallel with resource constraints
      const results = await Promise.all(items.map((item) => this.processAudioItem(item, resourceStrategy)))
      return results
    })
    // EXTRACT_FEATURES and ANALYZE keep their native processors.
  }

  /** Peak-normalises a clip into a pooled block: a stand-in for a model call. */
  private async processAudioItem(item: BatchItem, resources: ResourceStrategy): Promise<{ gain: number; samples: number; batchSize: number }> {
    const audio = item.data as Float32Array
    const block = this.memoryManager.allocate(audio.byteLength || 4, { operation: 'normalise' })
    try {
      const out = block.view('float32') as Float32Array
      let peak = 0
      for (const x of audio) peak = Math.max(peak, Math.abs(x))
      const gain = peak > 0 ? 0.9 / peak : 1
      for (let i = 0; i < audio.length; i++) out[i] = audio[i] * gain
      item.reportProgress(1)
      return { gain, samples: audio.length, batchSize: resources.batchSize }
    } finally {
      block.release()
    }
  }

  private mapToBatchOperationType(type: OrchestratorTask['type']): OperationType {
    switch (type) {
      case 'process':
        return BatchOperationType.PROCESS
      case 'features':
        return BatchOperationType.EXTRACT_FEATURES
      case 'analyze':
        return BatchOperationType.ANALYZE
    }
  }

  private groupTasksByType(tasks: OrchestratorTask[]): Map<OrchestratorTask['type'], OrchestratorTask[]> {
    const groups = new Map<OrchestratorTask['type'], OrchestratorTask[]>()
    for (const task of tasks) {
      const group = groups.get(task.type) ?? []
      group.push(task)
      groups.set(task.type, group)
    }
    return groups
  }

  /** Runs every task, each type as one stream of batches, all types at once; results in task order. */
  public async executeParallelTasks(tasks: OrchestratorTask[]): Promise<unknown[]> {
    const results = new Array<unknown>(tasks.length)
    const index = new Map(tasks.map((task, i) => [task, i]))

    // Group tasks by type
    const tasksByType = this.groupTasksByType(tasks)

    // Process each group using the batch processor
    await Promise.all(
      [...tasksByType].map(async ([type, typeTasks]) => {
        const batchType = this.mapToBatchOperationType(type)

        // Add tasks to batch processor
        const batchPromises = typeTasks.map((task) =>
          this.batchProcessor.addItem(batchType, task.data, {
            priority: task.priority,
            metadata: task.metadata,
            onProgress: task.onProgress,
            signal: task.signal,
          }),
        )

        // Wait for all tasks to complete
        const batchResults = await Promise.all(batchPromises)
        typeTasks.forEach((task, i) => (results[index.get(task)!] = batchResults[i]))
      }),
    )
    return results
  }

  async close(): Promise<void> {
    await this.batchProcessor.close()
  }
}

/** Runs a small mixed workload when executed directly (`npx tsx examples/model-orchestrator.ts`). */
async function main() {
  const orchestrator = new ModelOrchestrator({ featureOptions: { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64 } })
  const tone = (f: number) => Float32Array.from({ length: 16000 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * f * i) / 16000))
  const tasks: OrchestratorTask[] = [
    ...[220, 440, 880].map((f) => ({ type: 'features' as const, data: tone(f) })),
    ...[220, 440].map((f) => ({ type: 'analyze' as const, data: tone(f), priority: 9 })),
    ...[110, 330].map((f) => ({ type: 'process' as const, data: tone(f), metadata: { source: `tone-${f}` } })),
  ]
  const results = await orchestrator.executeParallelTasks(tasks)
  console.log(`${results.length} tasks done; batches: ${orchestrator.batchProcessor.getStats().batches}`)
  console.log('memory:', orchestrator.memoryManager.getMemoryUsage().percentage.toFixed(2), '% used')
  await orchestrator.close()
}

if (process.argv[1] && /model-orchestrator\.ts$/.test(process.argv[1])) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
