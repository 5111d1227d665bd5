// Kubernetes Events about our objects, so that `kubectl describe` tells an
// operator what happened. A repeat of the same event within the aggregation
// window bumps the count of the existing Event instead of creating another,
// as kubelet does, so a failure retried every few seconds stays one line.
// Recording never throws: an Event is a courtesy, not part of reconciling.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log.ts';
import type { CoreEvent, EventSink } from './api.ts';
import type { Clock } from './clock.ts';
import { httpStatus } from './errors.ts';
import type { KubeObject } from './informer.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  sink: EventSink;
  clock: Clock;
  log: Logger;
  component?: string;
  /** This replica (the pod name), for reportingInstance. */
  instance: string;
  /**
   * Where Events about cluster-scoped objects (Cloud, QuarantinePolicy) go.
   * The apiserver accepts an Event whose involvedObject has no namespace
   * only in `default` (it answers "involvedObject.namespace: does not match
   * event.namespace" elsewhere), which is also where kubelet puts Node events.
   */
  clusterScopedNamespace?: string;
  aggregateWindowMs?: number;
}

interface Recent {
  namespace: string;
  name: string;
  count: number;
  at: number;
}

const MAX_RECENT = 4096;

export class EventRecorder {
  readonly #o: EventRecorderOptions;
  readonly #recent = new Map<string, Recent>();

  constructor(options: EventRecorderOptions) {
    this.#o = options;
  }

  async record(obj: KubeObject, type: EventType, reason: string, message: string, action?: string): Promise<void> {
    const namespace = obj.metadata.namespace ?? this.#o.clusterScopedNamespace ?? 'default';
    const now = this.#o.clock.now();
    const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const message1 = message.length > 1024 ? `${message.slice(0, 1021)}...` : message;
    const key = [obj.metadata.uid ?? '', namespace, obj.metadata.name, type, reason, message1].join('\u0000');
    const window = this.#o.aggregateWindowMs ?? 600_000;
    try {
      const seen = this.#recent.get(key);
      if (seen !== undefined && now.getTime() - seen.at < window) {
        try {
          await this.#o.sink.patch(seen.namespace, seen.name, { count: seen.count + 1, lastTimestamp: stamp });
          seen.count++;
          seen.at = now.getTime();
          return;
        } catch (err) {
          // Expired or deleted meanwhile: fall through and create a new one.
          if (httpStatus(err) !== 404) throw err;
        }
      }
      const name = `${obj.metadata.name}.${now.getTime().toString(16)}${randomBytes(4).toString('hex')}`.slice(-253).replace(/^[^a-z0-9]+/, '');
      const component = this.#o.component ?? 'quarantine-operator';
      const event: CoreEvent = {
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          namespace: obj.metadata.namespace,
          uid: obj.metadata.uid,
          resourceVersion: obj.metadata.resourceVersion,
        },
        reason,
        message: message1,
        type,
        firstTimestamp: stamp,
        lastTimestamp: stamp,
        count: 1,
        source: { component },
        reportingComponent: component,
        reportingInstance: this.#o.instance,
      };
      if (action !== undefined) event.action = action;
      await this.#o.sink.create(namespace, event);
      if (this.#recent.size >= MAX_RECENT) {
        const oldest = this.#recent.keys().next().value;
        if (oldest !== undefined) this.#recent.delete(oldest);
      }
      this.#recent.delete(key);
      this.#recent.set(key, { namespace, name, count: 1, at: now.getTime() });
    } catch (err) {
      this.#o.log.warn({ err, object: obj.metadata.name, reason }, 'could not record an Event');
    }
  }
}
