export * from './model.js';
export * from './run.js';
export * from './node.js';
export * from './load.js';
