// TaskRouter from the GAMA seed, completed: routes each task on the memory
// manager's usage percentage and the task's priority: a low-resource path
// when memory is tight, a dedicated path for urgent tasks, the batch
// processor for everything else.
import { BatchOperationType, BatchProcessor, GAMAMemoryManager } from '../index.js'

export interface RoutedTask {
  id: string
  /** 0-10; above 8 counts as high priority, as in the seed. */
  priority: number
  audio: Float32Array
}

export type Route = 'low-resource' | 'dedicated' | 'batch'

export interface RouteResult {
  route: Route
  result: unknown
}

export class TaskRouter {
  readonly memoryManager: GAMAMemoryManager
  private readonly batchProcessor: BatchProcessor
  /** Tasks routed per path, for reporting. */
  readonly routed: Record<Route, number> = { 'low-resource': 0, dedicated: 0, batch: 0 }

  constructor(memoryManager = new GAMAMemoryManager({ maxMemory: '4GB' })) {
    this.memoryManager = memoryManager
    this.batchProcessor = new BatchProcessor({ memoryManager: this.memoryManager, maxBatchSize: 8 })
  }

  public async routeTask(task: RoutedTask): Promise<RouteResult> {
    // Get current memory usage
    const memoryUsage = this.memoryManager.getMemoryUsage()

    // Make routing decision based on memory availability
    if (memoryUsage.percentage > 80) {
      // High memory usage - route to low-resource service
      return this.routeToLowResourceService(task)
    } else if (task.priority > 8) {
      // High priority task - route to dedicated service
      return this.routeToDedicatedService(task)
    } else {
      // Standard task - route to batch processor
      return this.routeToBatchProcessor(task)
    }
  }

  /** Cheap level measurement only, one clip at a time. */
  private async routeToLowResourceService(task: RoutedTask): Promise<RouteResult> {
    this.routed['low-resource']++
    const result = await this.batchProcessor.addItem(BatchOperationType.MEASURE, task.audio, { priority: task.priority })
    return { route: 'low-resource', result }
  }

  /** Full analysis at the front of the queue. */
  private async routeToDedicatedService(task: RoutedTask): Promise<RouteResult> {
    this.routed.dedicated++
    const result = await this.batchProcessor.addItem(BatchOperationType.ANALYZE, { audio: task.audio, sampleRate: 16000 }, { priority: 'critical' })
    return { route: 'dedicated', result }
  }

  /** Full analysis, batched with similar clips. */
  private async routeToBatchProcessor(task: RoutedTask): Promise<RouteResult> {
    this.routed.batch++
    const result = await this.batchProcessor.addItem(BatchOperationType.ANALYZE, { audio: task.audio, sampleRate: 16000 }, { priority: task.priority })
    return { route: 'batch', result }
  }

  async close(): Promise<void> {
    await this.batchProcessor.close()
  }
}

/** Routes tasks while a model holds most of the memory budget, then after it is freed. */
async function main() {
  const router = new TaskRouter(new GAMAMemoryManager({ maxMemory: '64MiB', reservedMemory: 0, device: 'cpu' }))
  const clip = Float32Array.from({ length: 16000 }, (_, i) => 0.2 * Math.sin(i / 7))
  const tasks = Array.from({ length: 12 }, (_, i) => ({ id: `t${i}`, priority: i % 4 === 0 ? 9 : 5, audio: clip }))
  await Promise.all(tasks.map((t) => router.routeTask(t)))
  const model = router.memoryManager.allocate('56MiB', { operation: 'model-weights' })
  await Promise.all(tasks.map((t) => router.routeTask(t)))
  model.release()
  console.log('routed:', router.routed)
  await router.close()
}

if (process.argv[1] && /task-router\.ts$/.test(process.argv[1])) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
