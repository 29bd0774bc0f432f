import { LabIcon } from '@jupyterlab/ui-components';

/**
 * A table whose right column holds a pause sign. The `jp-icon3` class lets the theme
 * recolour it.
 */
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path fill-rule="evenodd" d="M3 3h18a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V4a1 1 0 0 1
      1-1zm1 6v10h6V9H4zm8 0v10h8V9h-8zM4 5v2h16V5H4z"/>
    <path d="M4.5 11h3v1.5h-3zM4.5 14h3v1.5h-3zM4.5 17h3v1h-3z"/>
    <path d="M14 11.5h1.5v5H14zM16.5 11.5H18v5h-1.5z"/>
  </g>
</svg>`;

/** The icon of the tablevault panel. */
export const tablevaultIcon = new LabIcon({ name: 'tablevault:processes', svgstr });
