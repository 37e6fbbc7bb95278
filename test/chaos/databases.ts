/** The database kinds the chaos worker can open a sink for (see harness.ts on adding one). */
import type { ChaosDatabase } from './harness';
import { postgresChaos } from './postgres';

export const chaosDatabases: Readonly<Record<string, ChaosDatabase>> = { postgres: postgresChaos };
