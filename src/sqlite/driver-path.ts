/**
 * better-sqlite3's entry file, resolved in the main thread: worker threads started from code
 * strings `require` it by this absolute path, whatever the current directory.
 */
let driverPath: string | null = null;

export function sqliteDriverPath(): string {
  driverPath ??= require.resolve('better-sqlite3');
  return driverPath;
}
