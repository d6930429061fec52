/**
 * d3, imported through this one file and per module: only what the panels use is bundled (no
 * d3-dsv, whose row parsers build functions from strings, which a strict CSP forbids).
 */
export { scaleBand, scaleLinear, scaleLog, scaleSqrt, scaleSequential, scaleSequentialLog } from "d3-scale";
export { interpolateViridis, interpolateInferno, interpolateRdBu, schemeTableau10 } from "d3-scale-chromatic";
export { ticks, extent, max, min, bisector } from "d3-array";
export { rgb } from "d3-color";
export { select, pointer } from "d3-selection";
export type { Selection } from "d3-selection";
export { axisBottom, axisLeft } from "d3-axis";
export { brushX } from "d3-brush";
export type { D3BrushEvent } from "d3-brush";
