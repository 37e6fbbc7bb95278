import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';

test('PostgreSQL named by the environment answers', async () => {
  const client = new pg.Client();
  await client.connect();
  try {
    const r = await client.query('select 1 + 1 as two');
    assert.equal(r.rows[0].two, 2);
  } finally {
    await client.end();
  }
});
