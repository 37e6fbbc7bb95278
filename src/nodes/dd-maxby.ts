/** dd-maxby: per group, the record with the greatest value of a property path or function. */
import type { NodeAPI } from './red';
import { registerExtremeBy } from './dd-extreme';

export default function (RED: NodeAPI): void {
  registerExtremeBy(RED, 'dd-maxby', 'max');
}
