/** The chaos cases of harness.ts on a MariaDB server the test owns (issue 19, point 4). */
import { chaosSuite } from './harness';
import { mariadbChaos } from './mariadb';

chaosSuite(mariadbChaos);
