// Every scenario `npm run bench` knows, in the order they run and are reported.
// A new scenario is a module exporting a Scenario, added here.
import type { Scenario } from './scenario.ts';
import { ingest } from './scenarios/ingest.ts';
import { apply } from './scenarios/apply.ts';
import { trace } from './scenarios/trace.ts';
import { capture } from './scenarios/capture.ts';
import { attributeScenario } from './scenarios/attribute.ts';
import { cli } from './scenarios/cli.ts';
import { isolation } from './scenarios/isolation.ts';
import { runRss } from './scenarios/run-rss.ts';

export const scenarios: readonly Scenario[] = [ingest, apply, runRss, trace, attributeScenario, capture, isolation, cli];
