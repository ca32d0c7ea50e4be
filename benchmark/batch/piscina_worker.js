// Piscina worker for the batch benchmark: the same work in a worker thread.
'use strict';
const { measure, meydaFeatures } = require('./work.js');

module.exports = ({ kind, data }) => (kind === 'measure' ? measure(data) : meydaFeatures(data));
