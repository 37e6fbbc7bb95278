/** The chaos cases of harness.ts on a PostgreSQL server the test owns. */
import { chaosSuite } from './harness';
import { postgresChaos } from './postgres';

chaosSuite(postgresChaos);
