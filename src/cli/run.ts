#!/usr/bin/env node
/** Process entry of the `llmroute` command (bin/llmroute.js loads the compiled copy). */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
