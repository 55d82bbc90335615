#!/usr/bin/env node
'use strict'
// Copies the server's page (lib/page/: index.html, app.js, style.css; plain files, no build step)
// to dist/page/, where lib/page.ts serves them from and where the package ships them. Only the
// page's own files are copied: the server serves no other name.

const fs = require('node:fs')
const path = require('node:path')

const FILES = ['index.html', 'app.js', 'style.css']
const from = path.resolve(__dirname, '..', 'lib', 'page')
const to = path.resolve(__dirname, '..', 'dist', 'page')

fs.rmSync(to, { recursive: true, force: true })
fs.mkdirSync(to, { recursive: true })
for (const name of FILES) fs.copyFileSync(path.join(from, name), path.join(to, name))
