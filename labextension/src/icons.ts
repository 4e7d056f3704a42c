import { LabIcon } from '@jupyterlab/ui-components';

import detSvg from '../style/icons/det-jupyter.svg';

/** The sidebar's icon (themed through the `jp-icon3` class in the SVG). */
export const detJupyterIcon = new LabIcon({ name: 'det-jupyter:icon', svgstr: detSvg });
