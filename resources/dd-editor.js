/*
 * Editor helpers shared by the node definitions in nodes/*.html (loaded by each of them through
 * <script src="resources/@deltaflow/node-red/dd-editor.js">; defined once). Every node file passes
 * a literal object to RED.nodes.registerType (so the Flow Library's validator can read it) and
 * calls these helpers from inside it:
 *  - validateInputs: a default's validator that marks a dd node invalid (red triangle) when a node
 *    that is not part of a dataflow is wired into it, and a notification when such a wire is drawn;
 *  - expression fields: a TypedInput whose types are a property path of the record, JavaScript (a
 *    function body, as in the core function node) and JSONata (an expression, as in change and
 *    switch), stored in two node properties (the text and its type); multi-line code is shown as a
 *    preview and edited in Node-RED's code editor;
 *  - function editors: the inline code editor of dd-reduce and dd-scan;
 *  - labels: the italic label of a named node, the label of a path-valued node ("max by since");
 *  - t(key): the texts shared by several nodes, from the dd-dataflow message catalog.
 */
(function () {
  'use strict';
  if (window.DeltaFlowEditor) return;

  /** The catalog holding the texts the helpers share (nodes/locales/<lang>/dd-dataflow.json). */
  var SHARED = '@deltaflow/node-red/dd-dataflow:';

  /** A shared text, e.g. t('editor.types.js'). */
  function t(key, params) {
    return RED._(SHARED + key, params);
  }

  function isOperator(type) {
    return typeof type === 'string' && type.indexOf('dd-') === 0 && type !== 'dd-dataflow';
  }
  function canFeedOperator(type) {
    return type === 'actyx-subscribe' || isOperator(type);
  }
  function nodeLabel(node) {
    return node.name ? node.name + ' (' + node.type + ')' : node.type;
  }

  /** The nodes wired into `node` that cannot feed a dataflow operator. */
  function wrongSources(node) {
    var links = RED.nodes.filterLinks({ target: node });
    var wrong = [];
    for (var i = 0; i < links.length; i++) {
      var source = links[i].source;
      if (source && !canFeedOperator(source.type)) wrong.push(nodeLabel(source));
    }
    return wrong;
  }

  function inputProblem(node) {
    var wrong = wrongSources(node);
    if (wrong.length === 0) return null;
    return t('editor.wiring.invalid', { nodes: wrong.join(', ') });
  }

  /** Validator (returns true or a reason) for the `name` default of every dd operator. */
  function validateInputs(value, opt) {
    return inputProblem(this) || true;
  }

  function revalidate(node) {
    if (!node || !isOperator(node.type)) return;
    RED.editor.validateNode(node);
    RED.view.redraw();
  }

  RED.events.on('links:add', function (link) {
    if (!link || !link.target || !isOperator(link.target.type)) return;
    if (link.source && !canFeedOperator(link.source.type)) {
      RED.notify(t('editor.wiring.notify', { target: nodeLabel(link.target), source: nodeLabel(link.source) }), {
        type: 'warning',
        timeout: 8000,
      });
    }
    revalidate(link.target);
  });
  RED.events.on('links:remove', function (link) {
    if (link) revalidate(link.target);
  });

  /** `labelStyle` of every node: italic when it has a name. */
  function labelStyle() {
    return this.name ? 'node_label_italic' : '';
  }

  /**
   * A node label function: the name, else `text` followed by the property path in `field` when
   * `typeField` says it is a path ("max by since"), else `text` alone. `key` is the label's key in
   * the node's own catalog.
   */
  function pathLabel(key, typeField, field) {
    return function () {
      if (this.name) return this.name;
      var text = this._(key);
      return this[typeField] === 'path' && this[field] ? text + ' ' + this[field] : text;
    };
  }

  // ---- syntax checks, as the runtime compiles (src/nodes/user-function.ts) ----

  /** Why `text` is not a valid expression of type `type`, or null. `params`: the JavaScript parameters. */
  function expressionProblem(type, text, params) {
    if (typeof text !== 'string' || text.trim() === '') return t('editor.problems.empty');
    try {
      if (type === 'js') {
        // eslint-disable-next-line no-new-func
        new Function(params.join(','), '"use strict";\n' + text);
      } else if (type === 'jsonata') {
        jsonata(text);
      } else if (type === 'path') {
        if (/\n/.test(text) || !RED.utils.validatePropertyExpression(text.trim().replace(/^msg\./, ''))) {
          return t('editor.problems.path');
        }
      } else {
        return t('editor.problems.type', { type: type });
      }
    } catch (err) {
      return t(type === 'jsonata' ? 'editor.problems.jsonata' : 'editor.problems.js', { message: err.message });
    }
    return null;
  }

  /** The live value of a form field of the node being edited, else the node's property. */
  function liveProperty(node, property) {
    var $field = $('#node-input-' + property);
    if ($field.length && $field.attr('data-dd-node') === node.id) return $field.val();
    return node[property];
  }

  /**
   * Validator factory for an expression property whose type is in `typeField` (null: always
   * JavaScript): checks the syntax as the runtime will (JavaScript compiled, never run). `when`
   * (optional): a function of the node; the field is only checked when it returns true.
   */
  function validateExpression(typeField, params, when) {
    return function (value, opt) {
      if (when && !when(this)) return true;
      var type = typeField ? liveProperty(this, typeField) || 'js' : 'js';
      return expressionProblem(type, value, params) || true;
    };
  }

  // ---- code in a TypedInput ----

  var EXPR_ICON = 'red/images/typedInput/expr.svg';

  /** A line of code to show in the field when it has several lines. */
  function preview(text) {
    var lines = text.split('\n');
    var first = '';
    for (var i = 0; i < lines.length && !first; i++) first = lines[i].trim();
    return { first: first, count: lines.length };
  }

  /**
   * Makes `$input` (a text input) a TypedInput for an expression. `opts`: types (of 'path', 'js',
   * 'jsonata'), type and text (the initial ones), params (JavaScript parameter names),
   * onChange(type, text) (called after every change). Single-line text is edited in the field;
   * text with several lines (a text input cannot hold line breaks) is shown as a preview there and
   * edited in Node-RED's code editor (the expand button, or a click on the preview). Returns
   * {type(), text()}.
   */
  function codeInput($input, opts) {
    var state = { text: typeof opts.text === 'string' ? opts.text : '' };
    var params = opts.params || ['record'];
    var widget = null;

    function multiline() {
      return state.text.indexOf('\n') >= 0;
    }
    function changed() {
      if (opts.onChange) opts.onChange($input.typedInput('type'), state.text);
    }
    function setText(text) {
      state.text = text;
      // The field shows single-line text as it is; the preview shows the rest.
      $input.typedInput('value', multiline() ? text.replace(/\s*\n\s*/g, ' ') : text);
      changed();
    }
    /** valueLabel of the code types: the preview for several lines, else the plain input. */
    function showValue(container) {
      var ti = this;
      widget = ti;
      if (!multiline()) {
        container.hide();
        ti.elementDiv.show();
        return;
      }
      ti.elementDiv.hide();
      container.show();
      var p = preview(state.text);
      $('<span class="dd-code-preview">')
        .css({ 'font-family': 'monospace', 'white-space': 'nowrap', overflow: 'hidden', 'text-overflow': 'ellipsis' })
        .text(p.first)
        .appendTo(container);
      $('<span class="dd-code-lines">')
        .css({ 'margin-left': '8px', opacity: 0.6, 'white-space': 'nowrap' })
        .text(t('editor.lines', { count: p.count }))
        .appendTo(container);
      container
        .css({ cursor: 'pointer', display: 'flex', 'align-items': 'center', padding: '0 6px' })
        .off('click.dd')
        .on('click.dd', function () {
          expand.call(ti);
        });
    }
    function expand() {
      var type = $input.typedInput('type');
      var done = function (value) {
        setText(value);
      };
      if (type === 'jsonata') {
        RED.editor.editExpression({ value: state.text, focus: true, complete: done });
      } else {
        RED.editor.editJavaScript({
          value: state.text,
          title: t('editor.jsTitle', { params: params.join(', ') }),
          mode: 'ace/mode/nrjavascript',
          width: 'Infinity',
          focus: true,
          complete: done,
        });
      }
    }
    var definitions = {
      path: {
        value: 'path',
        label: 'record.',
        hasValue: true,
        validate: function () {
          return expressionProblem('path', state.text, params) === null;
        },
      },
      js: {
        value: 'js',
        label: t('editor.types.js'),
        icon: 'fa fa-code',
        hasValue: true,
        validate: function () {
          return expressionProblem('js', state.text, params) === null;
        },
        valueLabel: showValue,
        expand: expand,
      },
      jsonata: {
        value: 'jsonata',
        label: t('editor.types.jsonata'),
        icon: EXPR_ICON,
        hasValue: true,
        validate: function () {
          return expressionProblem('jsonata', state.text, params) === null;
        },
        valueLabel: showValue,
        expand: expand,
      },
    };
    $input.typedInput({
      default: opts.types[0],
      types: opts.types.map(function (type) {
        return definitions[type];
      }),
    });
    $input.typedInput('type', opts.type && definitions[opts.type] ? opts.type : opts.types[0]);
    setText(state.text);
    // Typing in the field (single-line text): the field is the text.
    $input.on('change keyup paste', function () {
      var shown = $input.typedInput('value');
      if (!multiline() && shown !== state.text) {
        state.text = shown;
        changed();
      } else if (multiline() && $input.typedInput('type') === 'path') {
        // A path has no line breaks: the field holds all of it.
        state.text = shown;
        changed();
      }
    });
    $input.on('change', function (event, type) {
      if (typeof type === 'string') changed();
    });
    return {
      type: function () {
        return $input.typedInput('type');
      },
      text: function () {
        return state.text;
      },
    };
  }

  /**
   * An expression property of the node being edited (`node[field]`, its type in
   * `node[typeField]`), shown as a codeInput. Markup: <input type="text" id="node-input-<field>-typed">,
   * <input type="hidden" id="node-input-<field>"> and <input type="hidden" id="node-input-<typeField>">
   * (Node-RED fills the hidden inputs and reads them back on Done). `opts`: field, typeField, types,
   * params.
   */
  function expressionField(node, opts) {
    var $text = $('#node-input-' + opts.field).attr('data-dd-node', node.id);
    var $type = $('#node-input-' + opts.typeField).attr('data-dd-node', node.id);
    return codeInput($('#node-input-' + opts.field + '-typed'), {
      types: opts.types,
      type: $type.val() || opts.types[0],
      text: $text.val(),
      params: opts.params,
      onChange: function (type, text) {
        $type.val(type);
        $text.val(text).trigger('change');
      },
    });
  }

  // ---- the function editors of dd-reduce and dd-scan ----

  /**
   * The inline code editor of a JavaScript function property (`node[field]`, a function body with
   * the parameters `params`). Markup: <input type="hidden" id="node-input-<field>"> and
   * <div class="node-text-editor" id="node-input-<field>-editor">.
   */
  function functionEditor(node, field, params) {
    var globals = {};
    params.forEach(function (p) {
      globals[p] = true;
    });
    node['_dd_' + field] = RED.editor.createEditor({
      id: 'node-input-' + field + '-editor',
      mode: 'ace/mode/nrjavascript',
      value: $('#node-input-' + field).val(),
      globals: globals,
    });
  }

  /** Copies the editor's text back into the property's hidden input and disposes of the editor. */
  function saveFunctionEditor(node, field) {
    var editor = node['_dd_' + field];
    if (editor) $('#node-input-' + field).val(editor.getValue());
    closeFunctionEditor(node, field);
  }

  function closeFunctionEditor(node, field) {
    var editor = node['_dd_' + field];
    if (editor) editor.destroy();
    delete node['_dd_' + field];
  }

  /** Lets the code editor take the height the edit tray has to spare. */
  function resizeFunctionEditor(node, field, size) {
    var editor = node['_dd_' + field];
    if (!editor) return;
    var $div = $('#node-input-' + field + '-editor');
    var others = 0;
    $('#dialog-form')
      .find('> .form-row')
      .not($div.parent())
      .each(function () {
        if ($(this).is(':visible')) others += $(this).outerHeight(true);
      });
    $div.css('height', Math.max(120, size.height - others - 40) + 'px');
    editor.resize();
  }

  // ---- db-sink columns: JavaScript was an expression in 0.1.x ----

  /**
   * The function body equivalent to a column's JavaScript expression of a flow saved before the
   * JavaScript convention became a function body everywhere: `return <expression>;`, or
   * `return (<expression>\n);` when it spans lines, holds a comment or has spaces around it (a line
   * break cannot end the return early; surrounding spaces are kept). src/nodes/column-javascript.ts does the same and
   * maps both forms back to the expression for the table's fingerprint, so migrating rebuilds no
   * table (test/nodes/js-convention.test.ts checks that both agree).
   */
  function expressionToBody(expression) {
    var e = String(expression);
    if (e === e.trim() && !/\n|\/\/|\/\*/.test(e)) return 'return ' + e + ';';
    return 'return (' + e + '\n);';
  }

  window.DeltaFlowEditor = {
    t: t,
    validateInputs: validateInputs,
    validateExpression: validateExpression,
    expressionProblem: expressionProblem,
    inputProblem: inputProblem,
    labelStyle: labelStyle,
    pathLabel: pathLabel,
    codeInput: codeInput,
    expressionField: expressionField,
    functionEditor: functionEditor,
    saveFunctionEditor: saveFunctionEditor,
    closeFunctionEditor: closeFunctionEditor,
    resizeFunctionEditor: resizeFunctionEditor,
    expressionToBody: expressionToBody,
  };
})();
