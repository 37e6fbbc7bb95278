/** The database kinds the chaos worker can open a sink for (see harness.ts on adding one). */
import type { ChaosDatabase } from './harness';
import { mariadbChaos } from './mariadb';
import { postgresChaos } from './postgres';

export const chaosDatabases: Readonly<Record<string, ChaosDatabase>> = {
  postgres: postgresChaos,
  mariadb: mariadbChaos,
};
